# Shared-memory backend: SPSC rings in a memfd shared by two processes.
set(SSI_RDMA_SOURCES ${SSI_RDMA_SOURCES}
  ${CMAKE_CURRENT_SOURCE_DIR}/src/shm_memory.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/shm_ring.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/shm_channel.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/shm_transport.cpp)
