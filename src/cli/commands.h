// The lmpress sub-commands: one function each, one row each in the table of main.cpp.
#pragma once
#include "cli/args.h"

namespace lmp {

int cmd_inspect(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_bench(int argc, char** argv);

}  // namespace lmp
