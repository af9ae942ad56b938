//! `ipc-bench`: runs the benchmark scenarios between real processes and prints a table or JSON.
//!
//! ```text
//! cargo run --release -p benches --bin ipc-bench -- [--quick] [--json | --markdown]
//!     [--plot DIR] [--pin A,B] [--filter SUBSTR[,SUBSTR…]] [--repeats N] [--list]
//! ```
//!
//! Progress goes to standard error, the table (or the JSON document) to standard output. The exit
//! status is 1 if any scenario failed (wrong data, a dead peer, a timeout), 2 on a usage error.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

use benches::report::{
    Machine, Outcome, format_figure, render_json, render_markdown, render_table,
};
use benches::{Config, all, run_scenario};

const USAGE: &str = "\
usage: ipc-bench [--quick] [--json | --markdown] [--plot DIR] [--pin A,B]
                 [--filter SUBSTR[,SUBSTR...]] [--repeats N] [--list]

  --quick            short runs: every scenario in about two minutes in total
  --json             print {\"machine\": {...}, \"scenarios\": {...}} instead of a table
  --markdown         print a Markdown table (for pasting) instead of the aligned one
  --plot DIR         also write DIR/latency.svg and DIR/throughput.svg: the payload sweeps
                     (scenarios named NAME@SIZE), one line per NAME, log-log
  --pin A,B          run the parent process on CPU A and every forked child on CPU B
  --filter SUBSTR    only scenarios whose name contains SUBSTR (comma-separated: any of them;
                     the option may be repeated)
  --repeats N        repeats per scenario (default 7, or 3 with --quick)
  --list             print the scenario names and units, and exit
";

struct Args {
    quick: bool,
    json: bool,
    markdown: bool,
    plot: Option<std::path::PathBuf>,
    pin: Option<(usize, usize)>,
    list: bool,
    filters: Vec<String>,
    repeats: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        json: false,
        markdown: false,
        plot: None,
        pin: None,
        list: false,
        filters: Vec::new(),
        repeats: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--quick" => args.quick = true,
            "--json" => args.json = true,
            "--markdown" => args.markdown = true,
            "--plot" => args.plot = Some(value("--plot")?.into()),
            "--pin" => args.pin = Some(benches::pin::parse_pin(&value("--pin")?)?),
            "--list" => args.list = true,
            "--filter" => args.filters.extend(
                value("--filter")?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            ),
            "--repeats" => {
                let v = value("--repeats")?;
                let n: usize = v
                    .parse()
                    .map_err(|_| format!("--repeats: not a number: {v}"))?;
                if n == 0 {
                    return Err("--repeats must be at least 1".to_owned());
                }
                args.repeats = Some(n);
            }
            "-h" | "--help" => return Err(String::new()),
            // `cargo bench` passes this to every target.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.json && args.markdown {
        return Err("--json and --markdown are exclusive".to_owned());
    }
    Ok(args)
}

/// The names in `/dev/shm` that a peer keeps for the whole machine (not ours: ours never
/// outlive their users).
fn shm_entries() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("iox2_") && n.ends_with("global_mgmt"))
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the peers' machine-wide files that were not there before the run.
fn remove_new_peer_files(before: &[String]) {
    for name in shm_entries() {
        if !before.contains(&name) {
            let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
        }
    }
}

fn main() -> ExitCode {
    ipc_core::init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("ipc-bench: {msg}");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let scenarios: Vec<_> = all()
        .into_iter()
        .filter(|s| args.filters.is_empty() || args.filters.iter().any(|f| s.name.contains(f)))
        .collect();
    if args.list {
        for s in &scenarios {
            println!("{:<32} {}", s.name, s.unit);
        }
        return ExitCode::SUCCESS;
    }
    if scenarios.is_empty() {
        eprintln!("ipc-bench: no scenario matches {:?}", args.filters);
        return ExitCode::from(2);
    }
    let cfg = Config { quick: args.quick };
    let repeats = args.repeats.unwrap_or(cfg.pick(7, 3));
    // Peers that keep machine-wide files in /dev/shm (iceoryx2's node management) leave them
    // after their last node; remove those this run brought into being.
    let shm_before = shm_entries();
    let mut machine = Machine::collect(args.quick, repeats);
    if let Some((parent, child)) = args.pin {
        machine.pin = match benches::pin::pin_parent(parent, child) {
            Ok(took) => format!("pinned: {took}"),
            Err(why) => format!("pinning did not take: {why}"),
        };
        eprintln!("ipc-bench: {}", machine.pin);
    }
    eprintln!(
        "ipc-bench: {} scenarios × {repeats} repeats on {} ({} cores), {}, {}, python {}",
        scenarios.len(),
        machine.cpu,
        machine.cores,
        machine.kernel,
        machine.profile,
        machine.python
    );
    if cfg!(debug_assertions) {
        eprintln!("ipc-bench: this is a debug build; run with --release for real figures");
    }

    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut rows = Vec::with_capacity(scenarios.len());
    for (i, s) in scenarios.iter().enumerate() {
        let label = format!("[{:>2}/{}] {}", i + 1, scenarios.len(), s.name);
        let t = Instant::now();
        let bar = progress_bar(i, scenarios.len(), started.elapsed().as_secs_f64());
        let outcome = run_scenario(s, &cfg, repeats, |done, figure| {
            if tty {
                eprint!(
                    "\r\x1b[2K{bar} {label}: repeat {done}/{repeats}: {} {}",
                    format_figure(figure),
                    s.unit
                );
                let _ = std::io::stderr().flush();
            }
        });
        if tty {
            eprint!("\r\x1b[2K");
        }
        let secs = t.elapsed().as_secs_f64();
        match &outcome {
            Outcome::Measured {
                median, min, max, ..
            } => eprintln!(
                "{label}: {} {} (min {}, max {}) in {secs:.1} s",
                format_figure(*median),
                s.unit,
                format_figure(*min),
                format_figure(*max)
            ),
            Outcome::Skipped(why) => eprintln!("{label}: skipped: {why}"),
            Outcome::Failed(why) => eprintln!("{label}: FAILED: {why}"),
        }
        rows.push((s.name, outcome));
    }
    benches::scenarios::python::cleanup();
    eprintln!(
        "ipc-bench: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    remove_new_peer_files(&shm_before);
    let mut failed_output = false;
    if let Some(dir) = &args.plot {
        match benches::plot::write_charts(
            dir,
            &rows,
            &format!(
                "{}, {} cores, {}",
                machine.cpu,
                machine.cores,
                &machine.date[..10]
            ),
        ) {
            Ok(files) if files.is_empty() => {
                eprintln!("ipc-bench: --plot: no payload sweep was measured, no chart written")
            }
            Ok(files) => {
                for f in files {
                    eprintln!("ipc-bench: wrote {}", f.display());
                }
            }
            Err(e) => {
                eprintln!("ipc-bench: --plot: {e:#}");
                failed_output = true;
            }
        }
    }
    if args.json {
        println!("{}", render_json(&machine, &rows));
    } else if args.markdown {
        let comparison = benches::compare::render_comparison(&rows);
        if comparison.lines().count() > 2 {
            println!("{comparison}");
        }
        let sweeps = benches::compare::render_sweeps(&rows);
        if !sweeps.is_empty() {
            println!("{sweeps}");
        }
        print!("{}", render_markdown(&machine, &rows));
    } else {
        println!("{} | {}\n", machine.summary(), machine.pin);
        print!("{}", render_table(&rows));
    }
    let failed = rows
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .count();
    if failed > 0 {
        eprintln!("ipc-bench: {failed} scenario(s) failed");
        return ExitCode::from(1);
    }
    if failed_output {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// `[#####-----] 12/80 0:41 ETA 3:10`: scenarios done so far, time so far and the time left at
/// the pace so far.
fn progress_bar(done: usize, total: usize, elapsed: f64) -> String {
    const WIDTH: usize = 20;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(0);
    let clock = |secs: f64| format!("{}:{:02}", secs as u64 / 60, secs as u64 % 60);
    let eta = if done == 0 {
        "?".to_owned()
    } else {
        clock(elapsed / done as f64 * (total - done) as f64)
    };
    format!(
        "[{}{}] {}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        format_args!("{} ETA {eta}", clock(elapsed))
    )
}
