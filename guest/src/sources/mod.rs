//! Graph data sets the engine reads, each turning Graph's JSON pages into WIT records.

pub mod users;
