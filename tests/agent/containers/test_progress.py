"""Summing Docker's per-layer pull events, on a stream recorded from a real pull."""

from __future__ import annotations

from desktop_app.agent.containers.progress import PullProgress, PullProgressTracker

# Recorded from docker 20.10 pulling the test image from the loopback registry (ids cut).
RECORDED = [
    {"status": "Pulling from rma-test/httpd", "id": "1"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "aaa"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "bbb"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "ccc"},
    {"status": "Downloading", "progressDetail": {"current": 187, "total": 187}, "id": "ccc"},
    {"status": "Verifying Checksum", "progressDetail": {}, "id": "ccc"},
    {"status": "Download complete", "progressDetail": {}, "id": "ccc"},
    {"status": "Downloading", "progressDetail": {"current": 98304, "total": 8391326}, "id": "bbb"},
    {"status": "Downloading", "progressDetail": {"current": 36445, "total": 1064344}, "id": "aaa"},
    {
        "status": "Downloading",
        "progressDetail": {"current": 1064344, "total": 1064344},
        "id": "aaa",
    },
    {"status": "Download complete", "progressDetail": {}, "id": "aaa"},
    {"status": "Extracting", "progressDetail": {"current": 32768, "total": 1064344}, "id": "aaa"},
    {"status": "Download complete", "progressDetail": {}, "id": "bbb"},
    {"status": "Pull complete", "progressDetail": {}, "id": "aaa"},
    {"status": "Extracting", "progressDetail": {"current": 98304, "total": 8391326}, "id": "bbb"},
    {"status": "Pull complete", "progressDetail": {}, "id": "bbb"},
    {"status": "Pull complete", "progressDetail": {}, "id": "ccc"},
    {"status": "Digest: sha256:1c3c1bb88f1c4700da46338e0b3c6fe67349fd3fc659ce9676d8fb28c1c23cbd"},
    {"status": "Status: Downloaded newer image for 127.0.0.1:5000/rma-test/httpd:1"},
]
TOTAL = 187 + 8391326 + 1064344


def replay(events: list[dict[str, object]]) -> list[PullProgress]:
    tracker = PullProgressTracker()
    return [tracker.update(event) for event in events]


def test_recorded_pull_sums_layers() -> None:
    steps = replay(RECORDED)
    # Before any size is known there is no fraction.
    assert steps[3] == PullProgress(0, 0, complete_totals=False)
    assert steps[3].fraction is None
    # One layer's size known, two unknown: bytes so far, but no fraction that could shrink.
    assert (steps[4].bytes_done, steps[4].bytes_total, steps[4].fraction) == (187, 187, None)
    # All three sizes known: the sum of the per-layer currents over the sum of totals.
    assert steps[8].bytes_done == 187 + 98304 + 36445
    assert steps[8].bytes_total == TOTAL
    assert steps[8].fraction == (187 + 98304 + 36445) / TOTAL
    # Extraction counts are not download progress and never move the sum backwards.
    assert steps[11].bytes_done == 187 + 98304 + 1064344
    done = [step.bytes_done for step in steps]
    assert done == sorted(done)
    assert steps[-1] == PullProgress(TOTAL, TOTAL, complete_totals=True)
    assert steps[-1].fraction == 1.0


def test_layers_already_present_count_for_nothing() -> None:
    steps = replay(
        [
            {"status": "Already exists", "progressDetail": {}, "id": "aaa"},
            {"status": "Pulling fs layer", "progressDetail": {}, "id": "bbb"},
            {"status": "Downloading", "progressDetail": {"current": 50, "total": 100}, "id": "bbb"},
        ]
    )
    assert steps[0] == PullProgress(0, 0, complete_totals=False)
    assert steps[-1] == PullProgress(50, 100, complete_totals=True)
    assert steps[-1].fraction == 0.5


def test_tiny_layer_finished_before_its_size_was_said() -> None:
    steps = replay(
        [
            {"status": "Pulling fs layer", "progressDetail": {}, "id": "aaa"},
            {"status": "Pulling fs layer", "progressDetail": {}, "id": "bbb"},
            {"status": "Download complete", "progressDetail": {}, "id": "aaa"},
            {"status": "Downloading", "progressDetail": {"current": 10, "total": 40}, "id": "bbb"},
        ]
    )
    assert steps[-1] == PullProgress(10, 40, complete_totals=True)


def test_image_already_up_to_date() -> None:
    steps = replay(
        [
            {"status": "Pulling from rma-test/httpd", "id": "1"},
            {"status": "Digest: sha256:00"},
            {"status": "Status: Image is up to date for x:1"},
        ]
    )
    assert steps[-1] == PullProgress(0, 0, complete_totals=False)
    assert steps[-1].fraction is None
