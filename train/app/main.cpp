// The chart binary. Everything it does starts in train/cli.cpp.
#include "train/app/cli.h"

int main(int argc, char** argv) { return chart::cli_main(argc, argv); }
