#!/usr/bin/env bash
# A 4096 px request in parts through `tfstyle request`, on an export of max_size 4096.
set -euo pipefail
cd /work/scratch/r4096
rm -rf models out.png server.log
W=/work/dev/vgg16_notop.weights.h5
python -c "from tfstyle import cli; print(cli.__file__)" >/dev/null
echo "== export"; date
/usr/bin/time -f "export: %e s wall, peak %M KiB" tfstyle export --model-dir models/tfstyle \
    --max-size 4096 --weights $W --backbone vgg16 --precision float32
echo "== server"; date
python /work/main/tests/standin/model_server.py --host=127.0.0.1 --port=8600 --rest_api_port=8601 \
    --model_name=tfstyle --model_base_path=$PWD/models/tfstyle > server.log 2>&1 &
SERVER=$!
for i in $(seq 1 300); do tfstyle status --server 127.0.0.1:8600 2>/dev/null | grep -q AVAILABLE && break; sleep 1; done
tfstyle status --server 127.0.0.1:8600
echo "== request"; date
/usr/bin/time -f "request (client): %e s wall, peak %M KiB" tfstyle request /work/main/examples/content.jpg \
    /work/main/examples/style.png -o out.png --server 127.0.0.1:8600 --size 4096 --iterations 2 --chunk 1
date
grep VmHWM /proc/$SERVER/status | sed 's/^/server peak: /'
kill -TERM $SERVER; wait $SERVER || true
python -c "import PIL.Image as I; print('out.png', I.open('out.png').size)"
