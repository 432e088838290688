/// Quorum's release: what `quorum --version`, the report and the status endpoint say.
public enum Release {
  public static let version = "0.1.0"
}
