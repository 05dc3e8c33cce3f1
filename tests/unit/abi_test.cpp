#include <gtest/gtest.h>
#include "sluice/abi.h"
TEST(Abi, PairRoundTrips) {
  EXPECT_EQ(sl_pair_service(sl_pair(1023, 16383)), 1023u);
  EXPECT_EQ(sl_pair_tenant(sl_pair(1023, 16383)), 16383u);
}
