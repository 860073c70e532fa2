# libibverbs backend: RC queue pairs. Always compiled; with no RDMA device
# make_transport("verbs") reports Errc::kUnsupported. The transport runs on
# a VerbsFabric: libibverbs (verbs_fabric_ibv.cpp) or, in tests, the soft RC
# fake (library ssi_rdma_testing, testing/soft_rc.cpp).
set(SSI_RDMA_SOURCES ${SSI_RDMA_SOURCES}
  ${CMAKE_CURRENT_SOURCE_DIR}/src/verbs_conn_info.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/verbs_registration.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/verbs_device.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/verbs_fabric_ibv.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/verbs_credits.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/verbs_channel.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/verbs_setup.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/verbs_transport.cpp)
set(SSI_RDMA_TESTING_SOURCES ${SSI_RDMA_TESTING_SOURCES}
  ${CMAKE_CURRENT_SOURCE_DIR}/testing/soft_rc.cpp)
