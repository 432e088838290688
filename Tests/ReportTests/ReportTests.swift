import Data
import Ensemble
import Files
import Foundation
import Report
import QuorumTestSupport
import XCTest

/// report.html opened in headless Chromium (Debian's chromium, installed by setup.sh): the
/// page's own check finds every plot rendered with a size, the screenshot is not blank,
/// and the console shows no errors.
final class ReportTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  var chromium: String? { ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) } }

  func runChromium(_ arguments: [String]) throws -> (output: String, errors: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try XCTUnwrap(chromium))
    process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--user-data-dir=\(folder)/profile"] + arguments
    let output = Pipe()
    // stderr into a file: two pipes read one after the other can stall a chatty process.
    let errorPath = folder + "/chromium-\(UUID().uuidString).log"
    _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
    process.standardOutput = output
    process.standardError = try XCTUnwrap(FileHandle(forWritingAtPath: errorPath))
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (text, String(decoding: try FileBytes.read(errorPath), as: UTF8.self))
  }

  /// A small library of synthetic members over 8×8 images, ensembled and reported.
  func report() throws -> String {
    let classes = 4
    let count = 400
    let labels = (0..<count).map { Int32($0 % classes) }
    let images = ImageDataset(
      pixels: (0..<(count * 64)).map { UInt8(($0 * 37) % 256) }, labels: labels, height: 8, width: 8, channels: 1, classes: classes,
      classNames: ["cat", "dog", "bird & <fish>", "frog"])
    let folds = FoldAssignment(fold: (0..<count).map { Int32($0 % 5) }, count: 5)
    var members: [Member] = []
    for m in 0..<3 {
      var logits: [Float] = []
      for (row, label) in labels.enumerated() {
        // The true class ahead by 1.5, plus seeded noise of range 4: mistakes abound. (Noise
        // that is a function of the row would tell a meta-learner the label, row mod 4.)
        for c in 0..<classes {
          var state = UInt64(row * 64 + c * 8 + m) &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
          state ^= state >> 29
          state = state &* 0xBF58_476D_1CE4_E5B9
          state ^= state >> 32
          logits.append((c == Int(label) ? 1.5 : 0) + Float(state % 1000) / 250)
        }
      }
      let predictions = Predictions(logits: logits, classes: classes)
      members.append(Member(name: "seed-\(m)", outOfFold: predictions, test: predictions.rows(Array(0..<50))))
    }
    let methods = EnsembleMethods(members: members, labels: labels, folds: folds, settings: EnsembleSettings())
    let results = methods.run()
    let scores = MethodScores.of(results, labels: labels, testLabels: Array(labels.prefix(50)))
    let epochs = try (0..<3).flatMap { m in
      try (1...4).map { epoch in
        try JSONDecoder().decode(ReportPage.Epoch.self, from: Data("{\"task\":\"seed-\(m)/fold0\",\"attempt\":1,\"epoch\":\(epoch),\"loss\":\(2.0 / Double(epoch + m))}".utf8))
      }
    }
    let page = ReportPage(
      experiment: "synthetic", version: "test", commandLine: "quorum run synthetic.yaml", experimentText: "name: synthetic\n",
      classNames: images.classNames!, training: images, members: members, results: results, scores: scores,
      chosen: MethodScores.best(scores, objective: .balancedAccuracy), memberTemperatures: methods.memberTemperatures(), epochs: epochs
    ).explained(by: "a left-to-right ramp") { _, _ in
      // Cold on the left, hot on the right: the overlay must show it.
      (values: (0..<16).map { Float($0 % 4) / 3 }, height: 4, width: 4)
    }
    let path = folder + "/report.html"
    try FileBytes.writeAtomically(Array(try page.html().utf8), to: path)
    return path
  }

  func testTheReportRendersInHeadlessChromium() throws {
    guard chromium != nil else { throw XCTSkip("Debian's chromium is not installed: run scripts/setup.sh (CI does)") }
    let path = try report()
    let html = String(decoding: try FileBytes.read(path), as: UTF8.self)
    XCTAssertFalse(html.contains("src='http") || html.contains("href='http"), "self-contained: nothing fetched")
    XCTAssert(html.contains("bird &amp; &lt;fish") && !html.contains("<fish"), "class names are escaped")
    let plots = html.components(separatedBy: "class='plot'").count - 1
    XCTAssertEqual(plots, 5, "gain, recall against size, confusion, reliability, learning curves")

    // The DOM after the page's script ran: every plot has a size.
    let dom = try runChromium(["--virtual-time-budget=5000", "--dump-dom", "file://" + path])
    XCTAssert(dom.output.contains("data-rendered-plots=\"\(plots)\""), "the page's check did not see \(plots) rendered plots:\n\(dom.output.suffix(300))\n\(dom.errors.suffix(2000))")
    XCTAssertEqual(dom.output.components(separatedBy: "data:image/png;base64,").count - 1, 24, "12 confident mistakes as images, each with its heat map")
    XCTAssertEqual(html.components(separatedBy: "alt='Grad-CAM of example").count - 1, 12)
    // The overlay: the map's hot (right) side red, its cold (left) side blue.
    let overlayStart = try XCTUnwrap(html.range(of: "alt='Grad-CAM of example")).upperBound
    let base64 = html[overlayStart...].drop { $0 != "," }.dropFirst().prefix { $0 != "'" }
    let overlay = try ImageCodec.decode([UInt8](try XCTUnwrap(Data(base64Encoded: String(base64)))), path: "overlay", channels: 3)
    func pixel(_ x: Int) -> (red: Int, blue: Int) {
      let i = ((overlay.height / 2) * overlay.width + x) * 3
      return (Int(overlay.pixels[i]), Int(overlay.pixels[i + 2]))
    }
    let (left, right) = (pixel(0), pixel(overlay.width - 1))
    XCTAssertGreaterThan(right.red - right.blue, 60, "hot side")
    XCTAssertGreaterThan(left.blue - left.red, 60, "cold side")

    // A screenshot that is not blank, and no console errors.
    let screenshot = folder + "/page.png"
    let shot = try runChromium(["--enable-logging=stderr", "--v=0", "--window-size=1200,3000", "--screenshot=\(screenshot)", "file://" + path])
    let consoleErrors = shot.errors.split(separator: "\n").filter { $0.contains("CONSOLE") && ($0.contains("Error") || $0.contains("Uncaught")) }
    XCTAssertTrue(consoleErrors.isEmpty, consoleErrors.joined(separator: "\n"))
    let image = try ImageCodec.decode(try FileBytes.read(screenshot), path: screenshot, channels: 3)
    XCTAssertEqual(image.width, 1200)
    var inked = 0
    for pixel in 0..<(image.width * image.height) where image.pixels[pixel * 3] < 200 || image.pixels[pixel * 3 + 2] < 200 { inked += 1 }
    XCTAssertGreaterThan(Double(inked) / Double(image.width * image.height), 0.02, "the screenshot is (nearly) blank")
  }
}
