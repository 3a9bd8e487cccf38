//! A real containerd (Debian's, with its CRI plugin) of the test's own, and pods run on it over
//! the CRI API the way the kubelet runs them (tests/fixtures/cri/cri_pod.py): RunPodSandbox,
//! CreateContainer, StartContainer, with the node's network (no CNI) and the cgroupfs driver, so
//! the pod's cgroups are the runtime's. Nothing can be pulled: images are built from a local root
//! directory (a static busybox and the test workload) and imported. Everything lives in the
//! test's directory; pods are removed and containerd stopped on drop.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/cri");
/// Debian's interpreter, which has python3-grpcio (a pyenv python on PATH may not).
const PYTHON: &str = "/usr/bin/python3";
const PAUSE_IMAGE: &str = "registry.local/pause:1";

pub struct Containerd {
    child: Option<Child>,
    dir: PathBuf,
    socket: PathBuf,
    sandboxes: Vec<String>,
}

/// A running pod's container.
#[derive(Debug, Clone)]
pub struct PodContainer {
    pub sandbox_id: String,
    pub container_id: String,
}

impl Containerd {
    /// Starts containerd with its root and state under `dir` and waits for its socket.
    pub fn start(dir: &Path) -> Result<Containerd, String> {
        let state = dir.join("state");
        let socket = state.join("containerd.sock");
        std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let config = dir.join("containerd.toml");
        // restrict_oom_score_adj: the test may lack CAP_SYS_RESOURCE, without which runc cannot
        // give the sandbox the kubelet's oom_score_adj of -998.
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 [grpc]\n  address = \"{socket}\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\"]\n  restrict_oom_score_adj = true\n  \
                 sandbox_image = \"{PAUSE_IMAGE}\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"native\"\n",
                root = dir.join("root").display(),
                state = state.display(),
                socket = socket.display(),
            ),
        )
        .map_err(|e| format!("write containerd config: {e}"))?;
        let log = std::fs::File::create(dir.join("containerd.log"))
            .map_err(|e| format!("containerd log: {e}"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start containerd (apt-get install containerd runc): {e}"))?;
        let containerd = Containerd {
            child: Some(child),
            dir: dir.to_owned(),
            socket,
            sandboxes: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !containerd.socket.exists() {
            if Instant::now() > deadline {
                return Err(format!("containerd not serving: {}", containerd.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(containerd)
    }

    /// containerd's task state directory, which the sensor reads (`workload.containerd_task_dirs`).
    pub fn task_dir(&self) -> PathBuf {
        self.dir.join("state/io.containerd.runtime.v2.task")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// Builds an image of `rootfs` named `name` and imports it into the CRI's namespace.
    pub fn import_image(&self, rootfs: &Path, name: &str) -> Result<(), String> {
        let archive = self
            .dir
            .join(format!("image-{}.tar", name.replace(['/', ':'], "_")));
        run(Command::new(PYTHON)
            .arg(Path::new(FIXTURES).join("oci_image.py"))
            .arg(rootfs)
            .arg(name)
            .arg(&archive))?;
        run(Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "k8s.io", "images", "import"])
            .arg(&archive))
        .map(drop)
    }

    /// The sandbox image containerd is configured with, built from `rootfs`.
    pub fn import_pause_image(&self, rootfs: &Path) -> Result<(), String> {
        self.import_image(rootfs, PAUSE_IMAGE)
    }

    /// A pod `namespace/pod` (uid `uid`, BestEffort: the kubelet's cgroupfs parent
    /// `/kubepods/besteffort/pod<uid>`) with one container `container` of `image` running `cmd`.
    pub fn run_pod(
        &mut self,
        namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
        image: &str,
        cmd: &[&str],
    ) -> Result<PodContainer, String> {
        let out = run(Command::new(PYTHON)
            .arg(Path::new(FIXTURES).join("cri_pod.py"))
            .arg("run")
            .arg(&self.socket)
            .args([namespace, pod, uid, container, image])
            .arg(format!("/kubepods/besteffort/pod{uid}"))
            .arg("--")
            .args(cmd))
        .map_err(|e| format!("{e}\ncontainerd log: {}", self.log()))?;
        let mut ids = out.split_whitespace().map(str::to_owned);
        let (Some(sandbox_id), Some(container_id)) = (ids.next(), ids.next()) else {
            return Err(format!("cri_pod.py printed {out:?}"));
        };
        self.sandboxes.push(sandbox_id.clone());
        Ok(PodContainer {
            sandbox_id,
            container_id,
        })
    }

    /// The host pid of a container's first process.
    pub fn init_pid(&self, container_id: &str) -> Result<u32, String> {
        let path = self
            .task_dir()
            .join("k8s.io")
            .join(container_id)
            .join("init.pid");
        std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .trim()
            .parse()
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for sandbox in std::mem::take(&mut self.sandboxes) {
            let _ = run(Command::new(PYTHON)
                .arg(Path::new(FIXTURES).join("cri_pod.py"))
                .arg("remove")
                .arg(&self.socket)
                .arg(&sandbox));
        }
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill on our own child's pid; SIGTERM lets containerd close its state.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A one-layer OCI image archive of `rootfs` named `name`.
pub fn oci_archive(rootfs: &Path, name: &str, archive: &Path) -> Result<(), String> {
    run(Command::new(PYTHON)
        .arg(Path::new(FIXTURES).join("oci_image.py"))
        .arg(rootfs)
        .arg(name)
        .arg(archive))
    .map(drop)
}

/// A root directory for images: a static busybox as sh, sleep and id, and `programs` (host
/// path, path in the image) with the shared libraries they need.
pub fn rootfs(dir: &Path, programs: &[(&Path, &str)]) -> Result<PathBuf, String> {
    let root = dir.join("rootfs");
    let mkdir =
        |p: &Path| std::fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()));
    for sub in [
        "bin", "usr/bin", "usr/sbin", "tmp", "proc", "sys", "dev", "etc",
    ] {
        mkdir(&root.join(sub))?;
    }
    copy(Path::new("/bin/busybox"), &root.join("bin/busybox"))?;
    for (link, target) in [
        ("bin/sh", "busybox"),
        ("bin/sleep", "busybox"),
        ("usr/bin/id", "../../bin/busybox"),
    ] {
        std::os::unix::fs::symlink(target, root.join(link))
            .map_err(|e| format!("symlink {link}: {e}"))?;
    }
    for (program, inside) in programs {
        let to = root.join(inside.trim_start_matches('/'));
        if let Some(parent) = to.parent() {
            mkdir(parent)?;
        }
        copy(program, &to)?;
        // The libraries as the host's loader finds them, at the same paths in the image.
        let ldd = run(Command::new("ldd").arg(program))?;
        for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
            let to = root.join(lib.trim_start_matches('/'));
            if let Some(parent) = to.parent() {
                mkdir(parent)?;
            }
            copy(Path::new(lib), &to)?;
        }
    }
    Ok(root)
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))
}

/// Runs a command to its end; its stdout, or an error with its stderr.
fn run(command: &mut Command) -> Result<String, String> {
    let out = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{command:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
