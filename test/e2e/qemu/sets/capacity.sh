# Sourced by run.sh's boot for the capacity set (guest/capacity.sh): a
# 1 GiB device (the backing file is sparse), room for four 256 MiB regions,
# and a second, empty root port, so that the host bridge has two dports and
# the kernel gives it real HDM decoders instead of one passthrough decoder.
# It needs QEMU >= 8 (deps.sh unpacks it from backports): 7.2 gives each
# CXL component one HDM decoder, so one region per device.
CXL_MEM_SIZE=1G
CXL_EXTRA_DEVICES=(-device cxl-rp,port=1,bus=cxl.1,id=root_port14,chassis=0,slot=3)
# deps.sh unpacks backports' QEMU there, beside the system's 7.2 that the
# other boots keep (their race baselines were measured on it).
QEMU10_DIR=${QEMU10_DIR:-/opt/cxlregiond-e2e/qemu10}
QEMU=$QEMU10_DIR/usr/bin/qemu-system-x86_64
QEMU_ARGS=(-L "$QEMU10_DIR/usr/share/qemu" -L /usr/share/seabios)
