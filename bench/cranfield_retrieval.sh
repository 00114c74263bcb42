#!/usr/bin/env bash
# Cranfield end to end with the command line: the demo's small model (trained on the 180 queries whose
# number % 5 != 0), then a ranking of all 1400 documents for the 45 held-out test queries (number % 5 == 0),
# BM25 (bm25s) on the same queries, two fusions, and one metrics table. Numbers in the README come from here.
#   bash bench/cranfield_retrieval.sh [WORK_DIR]      (about 7 minutes on 2 CPU cores)
set -euo pipefail
DATA=${RELCOLLAB_CRANFIELD:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/cranfield}
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK" && cd "$WORK"
echo "relcollab bench: data $DATA, work dir $WORK"
start=$(date +%s)
relcollab demo --data "$DATA" --out demo.pkl 2>&1 | tr '\r' '\n' | grep -v -E '^(Epoch|█)|^\s*$' | grep -v '%\]'
trained=$(date +%s)
relcollab cranfield-export --data "$DATA" --out cran
python - <<'PY'
import pandas as pd
queries = pd.read_csv('cran/queries.csv', keep_default_na=False)
queries[queries['id'] % 5 == 0].to_csv('cran/test_queries.csv', index=False)
PY
relcollab index demo.pkl cran/docs.csv --out cran_index 2>&1 | tail -n 1
relcollab search demo.pkl cran/test_queries.csv --index cran_index --k 100 --out relcollab.trec
relcollab bm25 cran/docs.csv cran/test_queries.csv --k 100 --out bm25.trec
relcollab fuse bm25.trec relcollab.trec --method rrf --out fusion_rrf.trec
relcollab fuse bm25.trec relcollab.trec --method wsum --weights 0.7 0.3 --out fusion_wsum.trec
relcollab evaluate relcollab.trec bm25.trec fusion_rrf.trec fusion_wsum.trec --qrels cran/qrels.trec 2>/dev/null
echo "training (LM + relevance) took $((trained - start))s; ranking and evaluation $(( $(date +%s) - trained ))s"
