#![forbid(unsafe_code)]
//! Rampart's IMAP service.

pub mod command;
pub mod parser;
