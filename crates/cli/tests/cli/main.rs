//! End-to-end tests of the `wharf` binary: one test binary, a module per command.

mod archive;
mod bundle;
mod catalog;
mod component;
mod copy;
mod demo;
mod inspect;
mod nested;
mod objects;
mod registry;
mod reliability;
mod resolve;
mod scale;
mod serve;
mod sync;
mod terminal;
mod util;
mod ux;
