//! Live streams (placeholder filled below).
