"""The verdict of benchmarks/gpu_check.sh: one PASS/FAIL line per check of its gpu_check.json, then one
line naming what failed; exit status 1 when anything failed.

A GPU run is paid for in scarce device minutes, so a check that "ran" but proved nothing must not read as a
success: CUDA tests that all skipped, an automatic precision slower than fp32, a 24-epoch S10 run that
ended short of Page's accuracy, or a run over its time budget each fail here, by name.

    python benchmarks/gpu_check_verdict.py gpu_check/gpu_check.json [--floor 93.5] [--epochs 24]
        [--max-seconds 450] [--dry-run]

--dry-run (gpu_check.sh --dry-run, on the CPU): the CUDA tests may skip for want of a GPU, the speeds are
not compared and the accuracy floor does not apply; failed tests, missing rows, the epoch count and the
time budget still count. ``cuda_test_counts`` reads pytest's JUnit XML for gpu_check.sh's summary.
"""
import argparse
import json
import re
import sys
import xml.etree.ElementTree as ElementTree
from collections import Counter

GPU_SKIP = re.compile(r"cuda|gpu", re.IGNORECASE)  # a skip for want of a GPU: the reason says so


def cuda_test_counts(junit_xml, exit_code):
    """Passed, failed, errors and skipped tests (with each skip's reason) of a pytest ``--junitxml`` report;
    a missing or unreadable report (pytest crashed before writing it) counts as one error."""
    counts = {"exit_code": exit_code, "passed": 0, "failed": 0, "errors": 0, "skipped": 0, "skip_reasons": {}}
    try:
        cases = ElementTree.parse(junit_xml).getroot().iter("testcase")
    except (OSError, ElementTree.ParseError) as error:
        return {**counts, "errors": 1, "report_error": str(error)}
    reasons = Counter()
    for case in cases:
        outcome = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        if outcome is None:
            counts["passed"] += 1
        elif outcome.tag == "skipped":
            counts["skipped"] += 1
            reasons[outcome.get("message", "")] += 1
        else:
            counts["failed" if outcome.tag == "failure" else "errors"] += 1
    counts["skip_reasons"] = dict(reasons)
    return counts


def check_cuda_tests(summary, limits):
    """Every CUDA test ran and passed: none failed, and (on a GPU) none skipped for want of one."""
    tests = summary.get("cuda_tests")
    if not isinstance(tests, dict):
        return False, "CUDA tests: no results in the summary"
    said = (f"{tests['passed']} passed, {tests['failed']} failed, {tests['errors']} errors, "
            f"{tests['skipped']} skipped (pytest exit {tests.get('exit_code')})")
    no_gpu = sum(count for reason, count in tests["skip_reasons"].items() if GPU_SKIP.search(reason))
    if tests["failed"] or tests["errors"]:
        return False, f"CUDA tests: {said}; see cuda_tests.txt"
    if limits.dry_run:
        return tests["passed"] + tests["skipped"] > 0, f"CUDA tests (dry run, no GPU needed): {said}"
    if no_gpu or not tests["passed"]:
        return False, f"CUDA tests: no CUDA test ran: {said}; skip reasons {tests['skip_reasons']}"
    return True, f"CUDA tests: {said}"


def row(throughput, label):
    """The throughput table's row whose path starts with ``label``, e.g. "(a)"."""
    return next((row for row in throughput.get("rows", []) if row["path"].startswith(label)), None)


def check_throughput(summary, limits):
    """The automatic precision (row b: autocast + channels_last) takes training steps faster than fp32
    (row a) on the same model and data: otherwise the default the lessons use on a GPU is a slowdown."""
    throughput = summary.get("throughput") or {}
    fp32, auto = row(throughput, "(a)"), row(throughput, "(b)")
    if fp32 is None or auto is None:
        return False, "throughput: the table lacks row (a) fp32 or row (b) automatic precision"
    ratio = auto["model_step_img_s"] / max(fp32["model_step_img_s"], 1e-9)
    said = (f"automatic precision ({throughput.get('default_precision')}) model step {ratio:.2f}x fp32's "
            f"({auto['model_step_img_s']:,.0f} vs {fp32['model_step_img_s']:,.0f} img/s)")
    if limits.dry_run:
        return True, f"throughput (dry run, not compared): {said}"
    return ratio > 1.0, f"throughput: {said}" + ("" if ratio > 1.0 else ", not faster")


def check_s10(summary, limits):
    """The S10 run trained every epoch asked for and (on a GPU) ended at or above the accuracy floor."""
    s10 = summary.get("s10") or {}
    epochs, accuracy = s10.get("epochs"), s10.get("final_test_acc")
    if epochs != limits.epochs or accuracy is None:
        return False, f"S10: {epochs} epochs trained where {limits.epochs} were asked for"
    said = f"S10: test accuracy {accuracy:.2f}% after {epochs} epochs"
    if limits.dry_run:
        return True, said + " (dry run: no floor)"
    if accuracy < limits.floor:
        return False, f"{said}, below the {limits.floor:.2f}% floor"
    return True, f"{said} (floor {limits.floor:.2f}%)"


def check_time(summary, limits):
    """The whole check stayed inside its budget (one call of the device tool)."""
    seconds = summary.get("seconds")
    if seconds is None:
        return False, "time: the summary does not say how long the check took"
    return seconds <= limits.max_seconds, f"time: {seconds} s of the {limits.max_seconds} s budget"


CHECKS = {"cuda tests": check_cuda_tests, "throughput": check_throughput, "s10 accuracy": check_s10,
          "time budget": check_time}


def verdict(summary, limits):
    """``(lines, failed names)``: one PASS/FAIL line per check, then the closing line."""
    lines, failed = [], []
    for name, check in CHECKS.items():
        ok, message = check(summary, limits)
        lines.append(f"{'PASS' if ok else 'FAIL'} {message}")
        failed += [] if ok else [name]
    lines.append(f"gpu_check: FAIL: {', '.join(failed)}" if failed else f"gpu_check: PASS ({len(CHECKS)} checks)")
    return lines, failed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("summary", help="gpu_check.json, as gpu_check.sh writes it")
    parser.add_argument("--floor", type=float, default=93.5, help="the S10 run's least test accuracy, in %% "
                        "(default 93.5; the CPU runs reached 94.20%%)")
    parser.add_argument("--epochs", type=int, default=24, help="the S10 run's length (default 24)")
    parser.add_argument("--max-seconds", type=int, default=450, help="the whole check's budget (default 450)")
    parser.add_argument("--dry-run", action="store_true", help="a CPU dry run: no GPU figures to judge")
    limits = parser.parse_args(argv)
    with open(limits.summary) as file:
        summary = json.load(file)
    lines, failed = verdict(summary, limits)
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
