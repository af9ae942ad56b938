//! `ipc-bench`: runs the benchmark scenarios between real processes and prints a table, Markdown
//! or JSON. Progress goes to standard error, the report to standard output. The exit status is 1
//! if any scenario failed (wrong data, a dead peer, a timeout), 2 on a usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use benches::report::{
    Document, Machine, Row, format_figure, render_fairness_markdown, render_markdown,
    render_pairs_markdown, render_table,
};
use benches::runner::{Progress, Step, plan, run_plan};
use benches::{Config, all};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

/// Runs the benchmark scenarios between real processes: ours, the hardware limits and the
/// peers, each checked for what it moved.
#[derive(Debug, Parser)]
#[command(name = "ipc-bench")]
struct Args {
    /// Short runs: every scenario in a few minutes in total (150 ms windows, 80 ms for a
    /// sweep point, 3 repeats, 5 paired rounds, fewer points in some process sweeps)
    #[arg(long)]
    quick: bool,
    /// Print the JSON document {"machine", "scenarios", "pairs"} instead of the table
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print Markdown (the comparison, the pairs, the fairness, the sweeps, every scenario)
    #[arg(long)]
    markdown: bool,
    /// Also write SVG charts of the sweeps into DIR
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Run this process on CPU A and every forked peer on CPU B (team members run on all CPUs)
    #[arg(long, value_name = "A,B", value_parser = parse_pin)]
    pin: Option<Pin>,
    /// Only scenarios whose name contains SUBSTR (comma-separated: any of them; repeatable); a
    /// SUBSTR ending in `$` must match the whole name (`ours.ring_u64$`)
    #[arg(long, value_name = "SUBSTR", value_delimiter = ',')]
    filter: Vec<String>,
    /// Repeats per scenario, and rounds per pair (default 7; with --quick 3 repeats, 5 rounds)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    repeats: Option<u32>,
    /// Print the (filtered) scenario names and units, and exit
    #[arg(long)]
    list: bool,
    /// Ignored: `cargo bench` passes it to every target
    #[arg(long, hide = true)]
    bench: bool,
}

/// The two CPUs of `--pin`.
#[derive(Debug, Clone, Copy)]
struct Pin(usize, usize);

fn parse_pin(s: &str) -> Result<Pin, String> {
    benches::pin::parse_pin(s).map(|(a, b)| Pin(a, b))
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
    let raw: Vec<String> = std::env::args().collect();
    if raw.iter().any(|a| a == benches::scenarios::mpi::RANK_FLAG) {
        // A rank of an `mpi.*` job, started by mpirun.
        return ExitCode::from(benches::scenarios::mpi::rank_main(&raw));
    }
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let cfg = Config { quick: args.quick };
    let filters: Vec<&str> = args
        .filter
        .iter()
        .map(String::as_str)
        .filter(|f| !f.is_empty())
        .collect();
    let scenarios: Vec<_> = all()
        .into_iter()
        .filter(|s| filters.is_empty() || filters.iter().any(|f| name_matches(&s.name, f)))
        .collect();
    if args.list {
        for s in &scenarios {
            let quick = if s.quick { "" } else { "  (not with --quick)" };
            println!("{:<32} {}{quick}", s.name, s.unit);
        }
        return ExitCode::SUCCESS;
    }
    let scenarios: Vec<_> = scenarios
        .into_iter()
        .filter(|s| s.quick || !cfg.quick)
        .collect();
    if scenarios.is_empty() {
        eprintln!("ipc-bench: no scenario matches {filters:?}");
        return ExitCode::from(2);
    }
    let repeats = args.repeats.map_or(cfg.pick(7, 3), |n| n as usize);
    let rounds = args.repeats.map_or(cfg.pick(7, 5), |n| n as usize);
    // Peers that keep machine-wide files in /dev/shm (iceoryx2's node management) leave them
    // after their last node; remove those this run brought into being.
    let shm_before = shm_entries();
    let mut machine = Machine::collect(args.quick, repeats);
    if let Some(Pin(parent, child)) = args.pin {
        machine.pin = match benches::pin::pin_parent(parent, child) {
            Ok(took) => format!("pinned: {took}"),
            Err(why) => format!("pinning did not take: {why}"),
        };
        eprintln!("ipc-bench: {}", machine.pin);
    }
    let steps = plan(scenarios);
    eprintln!(
        "ipc-bench: {} scenarios × {repeats} repeats ({} paired with their limit × {rounds} rounds) on {} ({} cores), {}, {}, python {}",
        steps.len(),
        steps
            .iter()
            .filter(|s| matches!(s, Step::Paired { .. }))
            .count(),
        machine.cpu,
        machine.cores,
        machine.kernel,
        machine.profile,
        machine.python
    );
    if cfg!(debug_assertions) {
        eprintln!("ipc-bench: this is a debug build; run with --release for real figures");
    }

    let started = Instant::now();
    let bar = ProgressBar::new(steps.len() as u64).with_style(
        ProgressStyle::with_template("[{bar:20}] {pos}/{len} {elapsed} ETA {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#>-"),
    );
    let total = steps.len();
    let step_started = std::cell::Cell::new(Instant::now());
    let label = |i: usize, name: &str| format!("[{:>3}/{total}] {name}", i + 1);
    let current = std::cell::RefCell::new(String::new());
    let (rows, pairs) = run_plan(
        &steps,
        &cfg,
        repeats,
        rounds,
        |step, i| {
            step_started.set(Instant::now());
            *current.borrow_mut() = label(i, &step.scenario().name);
            bar.set_message(current.borrow().clone());
        },
        &mut |p| {
            let Progress::Repeat {
                done, of, figure, ..
            } = p;
            bar.set_message(format!(
                "{}: repeat {done}/{of}: {}",
                current.borrow(),
                format_figure(figure)
            ));
        },
        |row| {
            let secs = step_started.get().elapsed().as_secs_f64();
            let line = describe(&current.borrow(), row, secs);
            bar.suspend(|| eprintln!("{line}"));
            bar.inc(1);
        },
    );
    bar.finish_and_clear();
    benches::scenarios::python::cleanup();
    remove_new_peer_files(&shm_before);
    eprintln!(
        "ipc-bench: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut failed_output = false;
    if let Some(dir) = &args.plot {
        let title = format!(
            "{}, {} cores, {}",
            machine.cpu,
            machine.cores,
            &machine.date[..10]
        );
        match benches::plot::write_charts(dir, &rows, &title) {
            Ok(files) if files.is_empty() => {
                eprintln!("ipc-bench: --plot: no sweep was measured, no chart written")
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
        println!("{}", Document::new(&machine, &rows, &pairs).to_json());
    } else if args.markdown {
        let comparison = benches::compare::render_comparison(&rows, &pairs);
        for part in [
            comparison,
            render_pairs_markdown(&pairs),
            render_fairness_markdown(&rows),
            benches::compare::render_sweeps(&rows),
        ] {
            if part.lines().count() > 2 {
                println!("{part}");
            }
        }
        print!("{}", render_markdown(&machine, &rows));
    } else {
        println!("{} | {}\n", machine.summary(), machine.pin);
        print!("{}", render_table(&rows, &pairs));
    }
    let failed = rows.iter().filter(|r| r.summary.is_failed()).count();
    if failed > 0 {
        eprintln!("ipc-bench: {failed} scenario(s) failed");
        return ExitCode::from(1);
    }
    if failed_output {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// The progress line of a finished scenario.
fn describe(label: &str, row: &Row, secs: f64) -> String {
    match row.summary.cells() {
        Ok(([median, min, max], unit)) => {
            format!("{label}: {median} {unit} (min {min}, max {max}) in {secs:.1} s")
        }
        Err(why) => format!("{label}: {why}"),
    }
}

/// Whether a scenario name matches one `--filter` entry: a substring, or the whole name when the
/// entry ends in `$`.
fn name_matches(name: &str, filter: &str) -> bool {
    match filter.strip_suffix('$') {
        Some(whole) => name == whole,
        None => name.contains(filter),
    }
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn a_filter_ending_in_a_dollar_matches_only_the_whole_name() {
        assert!(name_matches("ours.ring_u64", "ours.ring_u64$"));
        assert!(!name_matches("ours.ring_u64_batch", "ours.ring_u64$"));
        assert!(name_matches("ours.ring_u64_batch", "ours.ring_u64"));
        assert!(name_matches("ours.ring_u64_batch", "ring"));
    }
}
