import sys

from contract_tests.spec_diff.cli import main

sys.exit(main())
