//! Lost-event accounting held to an independent count: the test's own workload, alone in a
//! cgroup of the test's own, makes exactly N+1 execs into a ring too small for them; the execs
//! delivered for its tree plus those the kernel counted lost for its cgroup must be N+1, no
//! more and no fewer. The 6.1 guest runs it too, after mounting cgroup v2 for it alone
//! (xtask/src/vm.rs).

use std::process::{Command, Stdio};

use integration_tests::{
    TestSensor, cgroup::OwnCgroup, execs, kernel_counters::lost_in_cgroup, require_root,
};
use lineage_sensor::config::CaptureConfig;
use sensor_ebpf::kind;

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");

#[test]
fn every_exec_of_a_cgroup_is_delivered_or_counted_lost_for_it_exactly() {
    require_root();
    const N: u64 = 300;
    let group = OwnCgroup::create().expect("own cgroup");
    // One page, and a consumer that reads nothing until the storm is over: the ring must fill.
    let sensor = TestSensor::start_stalled(CaptureConfig {
        ring_buffer_bytes: 4096,
        ..CaptureConfig::default()
    })
    .expect("sensor");
    let mut command = Command::new(WORKLOAD);
    command
        .args(["storm", &N.to_string()])
        .stdout(Stdio::piped());
    group
        .enter_on_spawn(&mut command)
        .expect("join the group on spawn");
    let child = command.spawn().expect("run workload");
    let workload_pid = child.id();
    let output = child.wait_with_output().expect("wait for workload");
    assert!(output.status.success(), "{output:?}");
    // Read while the programs are still attached; nothing in the group execs any more.
    let lost = lost_in_cgroup(std::process::id(), group.id)
        .unwrap_or_else(|e| panic!("reading LOST_BY_CGROUP with bpftool: {e}"))
        [kind::EXEC as usize];
    let seen = sensor.stop().expect("stop");
    // The group's execs: the workload's own (it joined before exec) and its N of /bin/true.
    let delivered = execs(&seen.events)
        .filter(|e| e.pid == workload_pid || e.ppid == workload_pid)
        .count() as u64;
    assert!(
        lost > 0 && delivered < N + 1,
        "a 4 KiB ring cannot hold {} execs: {delivered} delivered, {lost} counted lost",
        N + 1
    );
    assert_eq!(
        delivered + lost,
        N + 1,
        "every exec of the group is delivered or counted lost for it, once: {delivered} \
         delivered, {lost} counted lost"
    );
}
