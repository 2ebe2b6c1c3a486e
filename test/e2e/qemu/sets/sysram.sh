# Sourced by run.sh's boot for the System RAM boot (guest/sysram.sh): 6.1
# loses every write to the CXL memory with one root port under the host
# bridge (passthrough decoder); an empty second root port fixes it
# (docs/kernel.md#system-ram). 512 MiB: the region's dax device then holds
# three whole 128 MiB memory blocks (256 MiB held one), so that a failed
# offline has blocks offlined before it to put back online.
CXL_MEM_SIZE=512M
CXL_EXTRA_DEVICES=(-device cxl-rp,port=1,bus=cxl.1,id=root_port14,chassis=0,slot=3)
