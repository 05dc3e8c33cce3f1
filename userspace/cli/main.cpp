#include "sluice/abi.h"
#include "sluice.skel.h"
int main() { return 0; }
