# Sourced by run.sh's boot for the capacity set (guest/capacity.sh): a
# 1 GiB device (the backing file is sparse), room for four 256 MiB regions,
# and a second, empty root port, so that the host bridge has two dports and
# the kernel gives it real HDM decoders instead of one passthrough decoder.
# It needs QEMU >= 8 (deps.sh installs it from backports): 7.2 gives each
# CXL component one HDM decoder, so one region per device.
CXL_MEM_SIZE=1G
CXL_EXTRA_DEVICES=(-device cxl-rp,port=1,bus=cxl.1,id=root_port14,chassis=0,slot=3)
