//! One module per hook family.
mod exec;
mod net;
mod process;
