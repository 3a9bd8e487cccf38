//! One module per hook family.
mod exec;
pub mod file;
mod hold;
mod net;
mod prevent;
mod process;
mod sock;
