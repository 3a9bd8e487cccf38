//! lineage-sensor: process lineage and outbound connections from the kernel, for catching server
//! software turned into a foothold (MITRE ATT&CK T1505).

pub mod alert;
pub mod clock;
pub mod commands;
pub mod config;
pub mod detect;
pub mod enrich;
pub mod escape;
pub mod event;
pub mod kernel;
pub mod lineage;
pub mod memory;
pub mod metrics;
pub mod path_parts;
pub mod privileges;
pub mod proc_facts;
pub mod record;
pub mod sink;
pub mod state_file;
