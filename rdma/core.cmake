# Core of ssi_rdma: frames, codec, reactor, the rpc base, loopback, tcp, factory.
set(SSI_RDMA_SOURCES ${SSI_RDMA_SOURCES}
  ${CMAKE_CURRENT_SOURCE_DIR}/src/frame.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/codec.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/dispatcher.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/reactor.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/transport_base.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/loopback.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/redial.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/tcp_connection.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/tcp_transport.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/factory.cpp)
