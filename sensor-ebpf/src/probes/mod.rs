//! One module per hook family.
mod exec;
pub mod file;
mod net;
mod prevent;
mod process;
mod sock;
