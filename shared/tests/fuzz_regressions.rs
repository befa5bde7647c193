//! Replays every input under `fuzz/regressions/<target>/` through its fuzz target's entry
//! point (`calsync::fuzzing`): inputs that once crashed or stalled calsync, and the hostile
//! cases of issue 13, stay fixed. `make fuzz` adds new ones when it finds a crash.

use std::path::Path;

type Target = fn(&[u8]);

#[test]
fn fuzz_regression_inputs_stay_fixed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let targets: [(&str, Target); 5] = [
        ("ical", calsync::fuzzing::ical),
        ("multistatus", calsync::fuzzing::multistatus),
        ("google_event", calsync::fuzzing::google_event),
        ("batch", calsync::fuzzing::batch),
        ("jscalendar", calsync::fuzzing::jscalendar),
    ];
    let mut replayed = 0;
    for (name, run) in targets {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name}: no regression inputs");
        for f in files {
            let data = std::fs::read(&f).unwrap();
            run(&data);
            replayed += 1;
        }
    }
    println!("fuzz regressions: {replayed} inputs replayed");
}
