//! The load generator works end to end: a short run completes flows with no error and prints
//! the report a reader of docs/performance.md expects.

/// Runs the tool with `args`; its report, once it succeeded.
fn report_of(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_load"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The first number after `prefix` at the start of a line of `report`.
fn number_after(report: &str, prefix: &str) -> f64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix:?} line:\n{report}"))
}

#[test]
fn a_short_load_run_completes_flows_without_errors_and_reports_them() {
    let report = report_of(&["--store", "embedded", "--users", "2", "--seconds", "2"]);
    for endpoint in ["track", "challenge", "verify", "validate"] {
        let row = report
            .lines()
            .find(|l| l.starts_with(&format!("| {endpoint} |")))
            .unwrap_or_else(|| panic!("no row for {endpoint}:\n{report}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert!(cells[2].parse::<u64>().unwrap() > 0, "{row}");
        assert_eq!(cells[3], "0", "errors: {row}");
    }
    assert!(number_after(&report, "full flows: ") > 0.0, "{report}");
    assert!(report.contains("server CPU per flow:"), "{report}");
    // The verify timed during the run, in the probe thread's own CPU time: a real duration
    // (a debug build's verify takes far more than a microsecond).
    let probe = "one P-256 verify during the run (a probe thread's CPU time, median): ";
    assert!(number_after(&report, probe) >= 1.0, "{report}");
    // Its tenant has no events webhook, so its changes leave nothing in the outbox (DESIGN 10).
    assert!(report.contains("events outbox rows left: 0"), "{report}");
}

/// With `--events-webhook` the tenant's events reach a receiver in the tool: every flow makes
/// at least two (its action created, then verified), all delivered once the outbox is empty.
#[test]
fn a_load_run_with_an_events_webhook_delivers_the_flows_events() {
    let report = report_of(&["--users", "2", "--seconds", "2", "--events-webhook"]);
    let flows = number_after(&report, "full flows: ");
    let delivered = number_after(&report, "events delivered: ");
    assert!(flows > 0.0, "{report}");
    assert!(delivered >= 2.0 * flows, "{report}");
    assert!(report.contains("ms after the run)"), "{report}");

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_load"))
        .args(["--store", "dynamodb", "--events-webhook"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
}

/// Others run the tool by hand: `--help` lists every option and exits 0, and a wrong value is
/// a usage error, not a panic (issue #18).
#[test]
fn the_load_tool_prints_its_options_on_help_and_refuses_bad_values_with_usage() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_load"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8(output.stdout).unwrap();
    for option in [
        "--store",
        "--users",
        "--seconds",
        "--url",
        "--tenant-id",
        "--secret-key",
        "--server-pid",
        "--durability",
        "--events-webhook",
    ] {
        assert!(help.contains(option), "{option} missing from:\n{help}");
    }

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_load"))
        .args(["--durability", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--durability"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
