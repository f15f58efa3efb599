//! Building and decoding record batches (see the module docs once written).
