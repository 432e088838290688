import RunLayout
import XCTest

final class RunDirectoryTests: XCTestCase {
  /// A member's paths are its task's: what the coordinator stores under the task id is what
  /// the ensemble and `quorum predict` read.
  func testAMembersFilesAreItsTasks() {
    let run = RunDirectory("runs/x")
    XCTAssertEqual(run.memberOutOfFold(variant: "seed-1", fold: 2), run.logits(task: "seed-1/fold2", tensor: "oof"))
    XCTAssertEqual(run.memberOutOfFold(variant: "seed-1", fold: 2), "runs/x/logits/seed-1/fold2.oof.npy")
    XCTAssertEqual(run.memberTest(variant: "seed-1", fold: 0), "runs/x/logits/seed-1/fold0.test.npy")
    XCTAssertEqual(run.memberCheckpoint(variant: "a", fold: 3), run.checkpoint(task: RunDirectory.task(variant: "a", fold: 3)))
    XCTAssertEqual(run.memberCheckpoint(variant: "a", fold: 3), "runs/x/checkpoints/a/fold3.safetensors")
    XCTAssertEqual(run.refitTest(variant: "a"), "runs/x/logits/a/all.test.npy")
    XCTAssertEqual(run.refitCheckpoint(variant: "a"), "runs/x/checkpoints/a/all.safetensors")
    XCTAssertEqual(run.file(task: "a/fold0", name: "cam"), "runs/x/files/a/fold0.cam")
    XCTAssertEqual(
      [run.experiment, run.folds, run.journal, run.progress, run.report, run.scores, run.submission, run.submittedEnsemble],
      ["experiment.yaml", "folds.npy", "journal.jsonl", "progress.jsonl", "report.html", "scores.csv", "submission.csv", "ensemble/submitted.json"]
        .map { "runs/x/" + $0 })
  }
}
