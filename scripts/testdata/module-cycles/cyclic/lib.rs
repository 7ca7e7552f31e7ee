//! Fixture: a direct loop a <-> b and a three-module loop c -> d -> e -> c.
mod a;
mod b;
mod c;
mod d;
mod e;
mod leaf;
