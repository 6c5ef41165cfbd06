//! The `cohortdb` binary's subcommands.
