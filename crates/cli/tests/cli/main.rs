//! End-to-end tests of the `wharf` binary: one test binary, a module per command.

mod copy;
mod demo;
mod inspect;
mod registry;
mod serve;
mod util;
