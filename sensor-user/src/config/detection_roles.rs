//! The built-in `detect.not_servers_by_role`: processes that listen in order to give people a
//! shell or to run commands by design. Counted as servers by role, every login would be a
//! "shell below a server". Each entry says why; deploy/lineage-sensor.toml spells out the same
//! list and a unit test keeps the two equal.

use super::detection_entries::RoleExemption;

fn entry(executable: &str, argv_pattern: Option<&str>, reason: &str) -> RoleExemption {
    RoleExemption {
        executable: executable.into(),
        argv_pattern: argv_pattern.map(str::to_owned),
        reason: reason.into(),
    }
}

pub fn not_servers_by_role() -> Vec<RoleExemption> {
    vec![
        entry("sshd", None, "OpenSSH gives logins their shell"),
        entry(
            "sshd-session",
            None,
            "OpenSSH 9.8+ runs each session in sshd-session",
        ),
        entry("dropbear", None, "Dropbear SSH gives logins their shell"),
        entry(
            "*telnetd",
            None,
            "telnetd (in.telnetd, utelnetd) starts login",
        ),
        entry("login", None, "login starts the user's shell"),
        entry(
            "*getty",
            None,
            "getty (agetty, mingetty) starts login on a terminal",
        ),
        entry(
            "systemd",
            None,
            "init and systemd --user hold socket-activated ports and start every service",
        ),
        entry(
            "systemd-socket-*",
            None,
            "socket activation helpers hand their sockets to the service they start",
        ),
        entry(
            "*cron*",
            None,
            "cron (cron, crond, anacron) runs users' jobs through sh -c",
        ),
        entry("atd", None, "atd runs users' at jobs through a shell"),
        entry(
            "dockerd",
            None,
            "the Docker daemon starts containers, docker exec shells",
        ),
        entry(
            "docker-proxy",
            None,
            "publishes container ports; the container is the server",
        ),
        entry(
            "containerd",
            None,
            "container runtime: starts containers and exec sessions",
        ),
        entry(
            "containerd-shim*",
            None,
            "container shim: the parent of every container process",
        ),
        entry(
            "conmon",
            None,
            "Podman/CRI-O container monitor: parent of container processes",
        ),
        entry(
            "runc",
            None,
            "OCI runtime: starts container processes and exec sessions",
        ),
        entry(
            "crun",
            None,
            "OCI runtime: starts container processes and exec sessions",
        ),
        entry("crio", None, "CRI-O: starts containers and exec sessions"),
        entry("podman", None, "starts containers and exec sessions"),
        entry(
            "kubelet",
            None,
            "runs probes, exec sessions and mounts by design",
        ),
        entry(
            "cockpit-*",
            None,
            "Cockpit's web console gives its users a terminal",
        ),
        entry(
            "python*",
            Some(r"(^|[ /])(jupyter|jupyter-\S+|ipykernel_launcher|ipykernel)( |$)"),
            "Jupyter servers and kernels run users' code and give terminals",
        ),
        entry(
            "jupyter*",
            None,
            "Jupyter servers give their users terminals and kernels",
        ),
    ]
}
