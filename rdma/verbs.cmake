# libibverbs backend: RC queue pairs. Always compiled; with no RDMA device
# it reports Errc::kUnsupported at creation.
set(SSI_RDMA_SOURCES ${SSI_RDMA_SOURCES}
  ${CMAKE_CURRENT_SOURCE_DIR}/src/verbs_conn_info.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/verbs_registration.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/verbs_device.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/verbs_backend.cpp)
