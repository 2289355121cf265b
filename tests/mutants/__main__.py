from tests.mutants.runner import main

raise SystemExit(main())
