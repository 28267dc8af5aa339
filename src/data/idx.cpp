// data/idx.cpp — PLACEHOLDER while the reader is written (not part of any commit).
