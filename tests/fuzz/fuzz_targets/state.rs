//! Any bytes as the state files `run` reads back at start: the open incidents and the file
//! alerts waiting for their hash. Both loaders refuse or accept, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lineage_sensor::{
    config::Config,
    detect::{Engine, HostInfo, IncidentSnapshot},
    enrich::pending,
};

fuzz_target!(|input: &[u8]| {
    if let Ok(snapshot) = serde_json::from_slice::<IncidentSnapshot>(input)
        && let Ok(mut engine) = Engine::new(&Config::default(), HostInfo::default())
    {
        engine.restore_incidents(snapshot);
    }
    let _ = pending::parse(input);
});
