// The chart binary. Everything it does starts in train/cli.cpp.
#include "train/cli.h"

int main(int argc, char** argv) { return chart::cli_main(argc, argv); }
