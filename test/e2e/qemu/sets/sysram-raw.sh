# Sourced by run.sh's boot for the System RAM boots (guest/sysram.sh): 6.1
# loses every write to the CXL memory with one root port under the host
# bridge (passthrough decoder); an empty second root port fixes it
# (docs/kernel.md#system-ram).
CXL_EXTRA_DEVICES=(-device cxl-rp,port=1,bus=cxl.1,id=root_port14,chassis=0,slot=3)
