//! The interactive client's pieces: pure logic (commands, display, time, addresses) with unit
//! tests, plus the connection ([`link`]) and terminal output ([`console`]) that `bin/client`
//! wires into the seeds' menus.

pub mod addr;
pub mod clock;
pub mod command;
pub mod console;
pub mod display;
pub mod link;
mod resume;
pub mod session;
