#pragma once
// The world communicator of an MPI test executable (created by support/mpi_main.cpp).

#include "comm/communicator.h"

namespace ffc::test {

comm::Communicator& world();

}  // namespace ffc::test
