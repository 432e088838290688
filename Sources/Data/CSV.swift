import Files
/// RFC 4180 comma-separated values: quoted fields with "" escapes, LF or CRLF line ends.
public enum CSV {
  /// The rows of `text`; a final empty line is ignored. An unterminated quote is an error.
  public static func parse(_ text: String, path: String) throws -> [[String]] {
    var rows: [[String]] = []
    var row: [String] = []
    var field = ""
    var quoted = false
    var line = 1
    var iterator = text.unicodeScalars.makeIterator()
    var pending: Unicode.Scalar? = nil
    func next() -> Unicode.Scalar? {
      if let scalar = pending { pending = nil; return scalar }
      return iterator.next()
    }
    while let scalar = next() {
      if quoted {
        if scalar == "\"" {
          let following = next()
          if following == "\"" { field.unicodeScalars.append("\"") } else { quoted = false; pending = following }
        } else {
          if scalar == "\n" { line += 1 }
          field.unicodeScalars.append(scalar)
        }
        continue
      }
      switch scalar {
      case "\"" where field.isEmpty: quoted = true
      case ",": row.append(field); field = ""
      case "\r": continue
      case "\n":
        row.append(field)
        rows.append(row)
        row = []
        field = ""
        line += 1
      default: field.unicodeScalars.append(scalar)
      }
    }
    if quoted { throw DataError(file: path, "line \(line): a quoted field is not closed") }
    if !field.isEmpty || !row.isEmpty {
      row.append(field)
      rows.append(row)
    }
    return rows
  }
}
