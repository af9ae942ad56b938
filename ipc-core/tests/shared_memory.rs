//! `SharedMemory`: anonymous and named segments, handles across processes, Python interop, and
//! the cleanup tracker under SIGKILL.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ipc_core::{CreateError, OpenError, SegmentHandle, SharedMemory};
use ipc_testkit::{WATCHDOG, child_input, eventually, have_python, spawn};

fn shm_path(name: &str) -> String {
    format!("/dev/shm/{name}")
}

#[test]
fn anonymous_segment_reads_back_and_reattaches() {
    let seg = SharedMemory::anonymous(4096).unwrap();
    assert_eq!(seg.len(), 4096);
    assert_eq!(seg.name(), None);
    seg.write(4090, b"abcdef").unwrap();
    let again = SharedMemory::open(&seg.handle()).unwrap();
    let mut buf = [0u8; 6];
    again.read(4090, &mut buf).unwrap();
    assert_eq!(&buf, b"abcdef");
    assert!(seg.write(4091, b"abcdef").is_err());
    assert!(seg.read(usize::MAX, &mut buf).is_err());
}

#[test]
fn zero_size_is_refused() {
    assert!(matches!(
        SharedMemory::anonymous(0),
        Err(CreateError::InvalidSize { size: 0 })
    ));
    assert!(matches!(
        SharedMemory::builder(&ipc_core::random_name())
            .size(0)
            .create(),
        Err(CreateError::InvalidSize { .. })
    ));
}

#[test]
fn named_segment_is_exclusive_and_unlinked_by_its_owner() {
    let name = ipc_core::random_name();
    let seg = SharedMemory::builder(&name).size(100).create().unwrap();
    assert!(seg.is_owner());
    assert!(Path::new(&shm_path(&name)).exists());
    let mode = std::fs::metadata(shm_path(&name)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    assert!(matches!(
        SharedMemory::builder(&name).size(100).create(),
        Err(CreateError::AlreadyExists { .. })
    ));
    let opened = SharedMemory::builder(&name).open().unwrap();
    assert!(!opened.is_owner());
    assert_eq!(opened.len(), 100);
    drop(opened);
    assert!(
        Path::new(&shm_path(&name)).exists(),
        "a non-owner must not unlink"
    );
    drop(seg);
    assert!(!Path::new(&shm_path(&name)).exists());
    assert!(matches!(
        SharedMemory::builder(&name).open(),
        Err(OpenError::NotFound { .. })
    ));
}

#[test]
fn bad_names_are_refused() {
    for bad in ["", "a/b", "..", "x\0y"] {
        assert!(matches!(
            SharedMemory::builder(bad).size(1).create(),
            Err(CreateError::InvalidName { .. })
        ));
    }
}

#[test]
fn open_or_create_and_manual_unlink() {
    let name = ipc_core::random_name();
    let mut a = SharedMemory::builder(&name)
        .size(64)
        .open_or_create()
        .unwrap();
    assert!(a.is_owner());
    let b = SharedMemory::builder(&name)
        .size(64)
        .open_or_create()
        .unwrap();
    assert!(!b.is_owner());
    a.set_owner(false);
    drop(a);
    assert!(
        Path::new(&shm_path(&name)).exists(),
        "ownership was given up"
    );
    let mut b = b;
    b.unlink().unwrap();
    assert!(!Path::new(&shm_path(&name)).exists());
}

#[test]
fn handle_round_trips_through_the_codec() {
    let seg = SharedMemory::create_named(64).unwrap();
    let bytes = ipc_core::codec::encode(&seg.handle()).unwrap();
    let handle: SegmentHandle = ipc_core::codec::decode(&bytes).unwrap();
    assert_eq!(handle.name(), seg.name());
}

// --- across processes ---------------------------------------------------------------------

#[test]
#[ignore = "child role of anonymous_segment_reaches_a_spawned_child"]
fn child_writes_into_anonymous_segment() {
    let Some(handle) = child_input::<SegmentHandle>() else {
        return;
    };
    // The child did not inherit the memfd (it is close-on-exec): it reopens it through /proc.
    let seg = SharedMemory::open(&handle).unwrap();
    let mut buf = [0u8; 5];
    seg.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    seg.write(0, b"HELLO").unwrap();
}

#[test]
fn anonymous_segment_reaches_a_spawned_child() {
    let seg = SharedMemory::anonymous(4096).unwrap();
    seg.write(0, b"hello").unwrap();
    let child = spawn("child_writes_into_anonymous_segment", &seg.handle());
    child.join();
    let mut buf = [0u8; 5];
    seg.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"HELLO");
}

#[test]
#[ignore = "child role of sigkilled_creator_leaves_no_name"]
fn child_creates_named_segment_and_sleeps() {
    let Some(name) = child_input::<Option<String>>() else {
        return;
    };
    let seg = match name {
        Some(n) => SharedMemory::builder(&n).size(4096).create().unwrap(),
        None => SharedMemory::create_named(4096).unwrap(),
    };
    println!("NAME {}", seg.name().unwrap());
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn sigkilled_creator_leaves_no_name() {
    sigkilled_creator_leaves_no(None);
}

#[test]
fn sigkilled_creator_leaves_no_long_name() {
    // Names too long for the tracker's shared table travel over its socket instead.
    let long = format!("{}{}", ipc_core::random_name(), "x".repeat(250 - 30));
    sigkilled_creator_leaves_no(Some(long));
}

fn sigkilled_creator_leaves_no(name: Option<String>) {
    let mut child = spawn("child_creates_named_segment_and_sleeps", &name);
    let name = child.expect_line("NAME ", WATCHDOG);
    assert!(name.starts_with(ipc_core::NAME_PREFIX));
    assert!(Path::new(&shm_path(&name)).exists());
    child.kill();
    let took = eventually(Duration::from_secs(10), || {
        !Path::new(&shm_path(&name)).exists()
    });
    let took = took.unwrap_or_else(|| panic!("{name} still in /dev/shm after its creator died"));
    eprintln!("name removed {took:?} after SIGKILL of its creator");
}

#[test]
#[ignore = "child role of a_killed_tracker_is_replaced_and_its_names_still_cleaned"]
fn child_outlives_its_tracker() {
    let Some(()) = child_input::<()>() else {
        return;
    };
    let first = SharedMemory::create_named(4096).unwrap();
    let long = format!("{}{}", ipc_core::random_name(), "y".repeat(250 - 30));
    let long = SharedMemory::builder(&long).size(4096).create().unwrap();
    // The tracker is this thread's only child.
    let children = std::fs::read_to_string("/proc/thread-self/children").unwrap();
    let tracker: u32 = children.split_whitespace().next().unwrap().parse().unwrap();
    println!("FIRST {}", first.name().unwrap());
    println!("LONG {}", long.name().unwrap());
    println!("TRACKER {tracker}");
    // Wait until the parent has SIGKILLed the tracker (it stays a zombie: nobody reaps it).
    while !matches!(ipc_core::ProcessIdentity::of_pid(tracker), Ok(None)) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let second = SharedMemory::create_named(4096).unwrap();
    println!("SECOND {}", second.name().unwrap());
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn a_killed_tracker_is_replaced_and_its_names_still_cleaned() {
    let mut child = spawn("child_outlives_its_tracker", &());
    let first = child.expect_line("FIRST ", WATCHDOG);
    let long = child.expect_line("LONG ", WATCHDOG);
    let tracker: u32 = child.expect_line("TRACKER ", WATCHDOG).parse().unwrap();
    // SAFETY: kill has no memory effects; the pid is the child's tracker, which outlives
    // nothing of ours.
    assert_eq!(unsafe { libc::kill(tracker as i32, libc::SIGKILL) }, 0);
    let second = child.expect_line("SECOND ", WATCHDOG);
    for name in [&first, &long, &second] {
        assert!(Path::new(&shm_path(name)).exists(), "{name}");
    }
    child.kill();
    for name in [&first, &long, &second] {
        let gone = eventually(Duration::from_secs(10), || {
            !Path::new(&shm_path(name)).exists()
        });
        assert!(
            gone.is_some(),
            "{name} still in /dev/shm after its creator died"
        );
    }
}

#[test]
#[ignore = "child role of attacher_exit_does_not_unlink"]
fn child_opens_named_and_exits() {
    let Some(name) = child_input::<String>() else {
        return;
    };
    let seg = SharedMemory::builder(&name).open().unwrap();
    seg.write(0, b"x").unwrap();
}

#[test]
fn attacher_exit_does_not_unlink() {
    // CPython gh-82300: an attaching process's tracker unlinks a segment it does not own.
    let seg = SharedMemory::create_named(64).unwrap();
    let name = seg.name().unwrap().to_owned();
    spawn("child_opens_named_and_exits", &name).join();
    std::thread::sleep(Duration::from_millis(50));
    assert!(Path::new(&shm_path(&name)).exists());
    let mut b = [0u8; 1];
    seg.read(0, &mut b).unwrap();
    assert_eq!(&b, b"x");
}

// --- Python interop ----------------------------------------------------------------------

#[test]
fn python_sees_a_segment_created_here() {
    if !have_python() {
        eprintln!("skipped: python3 with multiprocessing.shared_memory is not available");
        return;
    }
    let seg = SharedMemory::create_named(32).unwrap();
    seg.write(0, b"from rust").unwrap();
    let script = r#"
import sys
from multiprocessing import shared_memory, resource_tracker
shm = shared_memory.SharedMemory(name=sys.argv[1])
# Attaching registers the name with Python's tracker (gh-82300); we do not own it.
resource_tracker.unregister(shm._name, "shared_memory")
print(bytes(shm.buf[:9]).decode())
shm.buf[9:20] = b" and python"
shm.close()
"#;
    let out = Command::new("python3")
        .args(["-c", script, seg.name().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from rust");
    let mut buf = [0u8; 20];
    seg.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"from rust and python");
}

#[test]
fn a_python_segment_opens_here() {
    if !have_python() {
        eprintln!("skipped: python3 with multiprocessing.shared_memory is not available");
        return;
    }
    let name = ipc_core::random_name();
    // Python creates the segment, writes, and keeps it (we unlink it afterwards).
    let script = r#"
import sys
from multiprocessing import shared_memory, resource_tracker
shm = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=4096)
shm.buf[:11] = b"from python"
resource_tracker.unregister(shm._name, "shared_memory")
shm.close()
"#;
    let out = Command::new("python3")
        .args(["-c", script, &name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seg = SharedMemory::builder(&name).open().unwrap();
    assert_eq!(seg.len(), 4096);
    let mut buf = [0u8; 11];
    seg.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"from python");
    seg.unlink().unwrap();
    assert!(!Path::new(&shm_path(&name)).exists());
}

#[test]
fn anonymous_segments_cannot_be_resized_by_a_peer() {
    let seg = SharedMemory::anonymous(8192).unwrap();
    seg.write(0, b"x").unwrap();
    // Find our memfd as a peer would reach it, through /proc, and try to shrink it.
    let mut tried = 0;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !target.to_string_lossy().starts_with("/memfd:ipc-anon") {
            continue;
        }
        let Ok(f) = std::fs::OpenOptions::new().write(true).open(entry.path()) else {
            continue;
        };
        if f.metadata().map(|m| m.len()).unwrap_or(0) != 8192 {
            continue;
        }
        assert!(
            f.set_len(0).is_err(),
            "a sealed memfd must refuse to shrink"
        );
        assert!(
            f.set_len(1 << 20).is_err(),
            "a sealed memfd must refuse to grow"
        );
        tried += 1;
    }
    assert!(
        tried >= 1,
        "the segment's memfd was not found in /proc/self/fd"
    );
    let mut b = [0u8; 1];
    seg.read(0, &mut b).unwrap();
    assert_eq!(&b, b"x");
}

#[test]
fn a_segment_holding_an_object_refuses_plain_copies() {
    use ipc_core::{AccessError, Placement, RawArray};
    // Named: opened by name as a plain segment.
    let named = RawArray::<u64>::create(&Placement::NamedRandom, 4).unwrap();
    let plain = SharedMemory::builder(named.name().unwrap()).open().unwrap();
    assert!(plain.holds_object());
    let mut buf = [0u8; 8];
    assert_eq!(plain.read(0, &mut buf), Err(AccessError::HoldsObject));
    assert_eq!(plain.write(300, &buf), Err(AccessError::HoldsObject));
    // Anonymous: attached through the object's handle.
    let anon = RawArray::<u64>::new(4).unwrap();
    let plain = SharedMemory::open(&anon.handle().segment).unwrap();
    assert_eq!(plain.write(0, &buf), Err(AccessError::HoldsObject));
    // The object's own segment handle refuses too.
    let seg = ipc_core::raw::ObjectSegment::open(
        &anon.handle(),
        &ipc_core::raw::TypeFingerprint::of::<u64>("RawArray"),
    )
    .unwrap();
    assert_eq!(
        seg.shared_memory().read(0, &mut buf),
        Err(AccessError::HoldsObject)
    );
    // A plain segment copies as before; bounds are still checked.
    let mine = SharedMemory::anonymous(64).unwrap();
    assert!(!mine.holds_object());
    mine.write(8, &buf).unwrap();
    assert!(matches!(
        mine.write(60, &buf),
        Err(AccessError::OutOfBounds(_))
    ));
}

#[test]
fn segment_names_are_unpredictable_from_one_another() {
    // Every name carries 104 fresh random bits: consecutive names share no structure (a
    // per-process secret plus a counter would differ in a handful of low bits).
    let names: Vec<u128> = (0..256)
        .map(|_| {
            let n = ipc_core::random_name();
            assert!(n.starts_with(ipc_core::NAME_PREFIX));
            u128::from_str_radix(&n[ipc_core::NAME_PREFIX.len()..], 16).unwrap()
        })
        .collect();
    let distinct: std::collections::HashSet<_> = names.iter().collect();
    assert_eq!(distinct.len(), names.len());
    for pair in names.windows(2) {
        let differing = (pair[0] ^ pair[1]).count_ones();
        assert!(
            differing >= 20,
            "consecutive names differ in {differing} bits only"
        );
    }
}

#[test]
fn racing_byte_copies_are_not_data_races() {
    // One mapping shared by two threads, so that ThreadSanitizer sees both sides.
    let seg = SharedMemory::anonymous(4096).unwrap();
    let other = &seg;
    std::thread::scope(|s| {
        s.spawn(|| {
            for r in 0..1000u32 {
                seg.write(3, &[r as u8; 1000]).unwrap();
            }
        });
        s.spawn(|| {
            let mut buf = [0u8; 1000];
            for _ in 0..1000 {
                other.read(3, &mut buf).unwrap();
            }
        });
    });
}
