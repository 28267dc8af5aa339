// exec/data_parallel.h — what compile() does across the ranks of a data-parallel Program
// before its first step: agree that every rank compiles the same thing, and start every rank
// from rank 0's variables.
#pragma once

#include <string>

#include "core/sha256.h"
#include "exec/variables.h"
#include "trainrt/dist.hpp"

namespace trainrt::detail {

/// Compares every rank's `fingerprint` (of its graph and options). When they differ, every
/// rank throws InvalidArgument: the ranks that differ from rank 0 name the first line of
/// `graph_text` (the printed graph) that differs from rank 0's, or say that only the options
/// differ; the others name the ranks that differ. A collective: every rank must call it.
void check_same_program(dist::Communicator& comm, const Digest& fingerprint, const std::string& graph_text);

/// Copies rank 0's value of every variable to the other ranks (a collective).
void broadcast_variables(dist::Communicator& comm, VariableStore& variables);

}  // namespace trainrt::detail
