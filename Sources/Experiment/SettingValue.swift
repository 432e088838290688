import Data
import NN
import Training

/// A value from the experiment file, with the line it came from.
public struct SettingValue: Equatable, CustomStringConvertible {
  public enum Kind: Equatable {
    case number(Double)
    case text(String)
    case flag(Bool)
    case list([SettingValue])
  }

  public var kind: Kind
  public var line: Int?

  public init(kind: Kind, line: Int?) {
    self.kind = kind
    self.line = line
  }

  public var description: String {
    switch kind {
    case .number(let value): return value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    case .text(let value): return value
    case .flag(let value): return String(value)
    case .list(let values): return "[" + values.map(\.description).joined(separator: ", ") + "]"
    }
  }
}
