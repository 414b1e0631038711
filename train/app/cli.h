// The `chart` command line: subcommand dispatch, option parsing, error reporting.
#pragma once

namespace chart {
int cli_main(int argc, char** argv);
}
