//! One module per hook family.
mod exec;
pub mod file;
mod net;
mod process;
mod sock;
