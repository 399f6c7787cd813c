#![forbid(unsafe_code)]
//! Rampart's IMAP service.

pub mod command;
pub mod mime;
pub mod parser;
pub mod render;
pub mod search;
pub mod utf7;
