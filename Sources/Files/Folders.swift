import Foundation

/// Creating and listing folders with messages a user can act on: the path and the
/// system's reason in words ("Permission denied", "Not a directory"), never a Foundation
/// error domain and code.
public enum Folders {
  /// Creates `path` and any missing parents (like `mkdir -p`).
  public static func create(_ path: String) throws {
    var prefix = path.hasPrefix("/") ? "/" : ""
    for component in path.split(separator: "/") {
      prefix += component
      if mkdir(prefix, 0o755) != 0 {
        let reason = errno
        var isFolder: ObjCBool = false
        guard reason == EEXIST, FileManager.default.fileExists(atPath: prefix, isDirectory: &isFolder), isFolder.boolValue else {
          let cause = reason == EEXIST ? "\(prefix) is a file, not a folder" : "\(prefix): \(String(cString: strerror(reason)))"
          throw DataError(file: path, "cannot create this folder: \(cause): choose another place or fix its permissions")
        }
      }
      prefix += "/"
    }
  }

  /// The names in `folder` (without "." and ".."), sorted.
  public static func list(_ folder: String) throws -> [String] {
    guard let stream = opendir(folder) else {
      let reason = errno
      let problem: String
      switch reason {
      case ENOENT: problem = "no such folder"
      case ENOTDIR: problem = "is a file, not a folder"
      case EACCES: problem = "cannot be listed by this user: check its permissions"
      default: problem = "cannot be listed: \(String(cString: strerror(reason)))"
      }
      throw DataError(file: folder, problem)
    }
    defer { closedir(stream) }
    var names: [String] = []
    while let entry = readdir(stream) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
      if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
  }

  /// Whether `path` is a folder.
  public static func isFolder(_ path: String) -> Bool {
    var isFolder: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && isFolder.boolValue
  }
}
