//! Unit tests of the guest verdicts on small roots written here.

use super::*;
