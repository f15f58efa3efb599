//! Where the tests find what they run: the repository, the workspace binaries (`sluiced`,
//! `sluiced-faults`, `sluice`, `sluice-netem`) next to the test executable, built once per
//! test process when missing, and the third-party tools `scripts/test.sh` provisions
//! (libfaketime, the Python venv, Kafka's jars).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The repository root (the parent of this crate's directory).
pub fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .expect("the tests crate lives one level below the repository root")
        .to_path_buf()
}

/// `target/<profile>/`, the directory that holds the test executable's `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe
        .parent()
        .expect("test executable has a parent directory");
    if deps.file_name() == Some(OsStr::new("deps")) {
        deps.parent().expect("deps/ has a parent").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

/// One cargo build per (package, binary) per test process, even when the binary exists
/// (it may be older than the sources: `cargo test -p sluice-tests` does not rebuild it;
/// when it is current the build is a no-op); parallel tests wait for it.
fn workspace_binary(package: &str, bin: &str, env_override: &str) -> PathBuf {
    workspace_binary_with(package, bin, &[], env_override)
}

/// [`workspace_binary`] built with the package's `features` (a binary that requires them).
fn workspace_binary_with(
    package: &str,
    bin: &str,
    features: &[&str],
    env_override: &str,
) -> PathBuf {
    if let Some(path) = std::env::var_os(env_override) {
        return PathBuf::from(path);
    }
    static BUILT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let path = profile_dir().join(bin);
    let mut built = BUILT
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == bin) {
        let profile = profile_dir();
        let release = profile.file_name() == Some(OsStr::new("release"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .current_dir(repo_root())
            .args(["build", "-p", package, "--bin", bin]);
        if !features.is_empty() {
            command.arg("--features").arg(features.join(","));
        }
        if release {
            command.arg("--release");
        }
        let status = command
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo build for {bin}: {e}"));
        assert!(
            status.success(),
            "cargo build -p {package} --bin {bin} failed: {status}"
        );
        built.push(bin.to_string());
    }
    assert!(
        path.exists(),
        "{} does not exist after building it",
        path.display()
    );
    path
}

/// The `sluiced` broker binary of this build profile (`SLUICED_BIN` overrides it).
pub fn sluiced_binary() -> PathBuf {
    workspace_binary("sluice-broker", "sluiced", "SLUICED_BIN")
}

/// `sluiced-faults` of this build profile (`SLUICED_FAULTS_BIN` overrides it):
/// `sluiced` whose unsynced writes die with the process, so `kill -9` is a power cut
/// (the broker's `fault-fs` feature; debug builds only).
pub fn sluiced_faults_binary() -> PathBuf {
    workspace_binary_with(
        "sluice-broker",
        "sluiced-faults",
        &["fault-fs"],
        "SLUICED_FAULTS_BIN",
    )
}

/// `sluice-netem` of this build profile (`SLUICE_NETEM_BIN` overrides it): packet delay
/// through NFQUEUE for the network lab ([`netns::NetLab::set_delay`]).
pub fn sluice_netem_binary() -> PathBuf {
    workspace_binary("sluice-tests", "sluice-netem", "SLUICE_NETEM_BIN")
}

/// The `sluice` CLI binary of this build profile (`SLUICE_BIN` overrides it).
pub fn sluice_binary() -> PathBuf {
    workspace_binary("sluice-client", "sluice", "SLUICE_BIN")
}

/// libfaketime's multi-threaded preload library (Debian's `faketime` package, which
/// `scripts/test.sh` installs): a node started with it in `LD_PRELOAD` reads its wall clock's
/// offset from a file, so the fault harness can make its clock jump.
pub fn faketime_library() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib").ok().and_then(|dirs| {
        dirs.filter_map(Result::ok)
            .map(|dir| dir.path().join("faketime/libfaketimeMT.so.1"))
            .chain([PathBuf::from("/usr/lib/faketime/libfaketimeMT.so.1")])
            .find(|path| path.exists())
    });
    found.unwrap_or_else(|| {
        panic!(
            "libfaketimeMT.so.1 is missing: run ./scripts/test.sh (it installs Debian's faketime)"
        )
    })
}

/// The Python of the virtualenv that `scripts/test.sh` creates, with kafka-python and
/// confluent-kafka installed.
pub fn venv_python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/test.sh to provision the interop clients",
        python.display()
    );
    python
}

/// The class path of the Java Kafka client that `scripts/test.sh` copies into
/// `tests/java/target/lib` (a `dir/*` wildcard, as `java -cp` takes it).
pub fn java_classpath() -> String {
    let lib = repo_root().join("tests/java/target/lib");
    let has_client = std::fs::read_dir(&lib)
        .map(|entries| {
            entries.filter_map(Result::ok).any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("kafka-clients-")
            })
        })
        .unwrap_or(false);
    assert!(
        has_client,
        "{} has no kafka-clients jar: run ./scripts/test.sh to provision the interop clients",
        lib.display()
    );
    format!("{}/*", lib.display())
}
