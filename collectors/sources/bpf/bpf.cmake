# Optional BPF socket walk for the netns collector (collectors/sources/bpf_socket_walk.h).
# SOCKET_EXPORTER_BPF defaults to ON when clang, bpftool, libbpf and the build
# machine's kernel BTF (for vmlinux.h; CO-RE relocates at load time) are all
# there. Without it, bpf_socket_walk.cpp compiles to a stub and the netns
# collector uses netlink per namespace.
find_program(BPF_CLANG NAMES clang clang-14)
find_program(BPF_TOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin)
find_program(BPF_STRIP NAMES llvm-strip llvm-strip-14)
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(LIBBPF QUIET IMPORTED_TARGET libbpf)
endif()
set(BPF_VMLINUX_BTF /sys/kernel/btf/vmlinux)
if(BPF_CLANG AND BPF_TOOL AND LIBBPF_FOUND AND EXISTS ${BPF_VMLINUX_BTF})
  set(bpf_default ON)
else()
  set(bpf_default OFF)
endif()
option(SOCKET_EXPORTER_BPF "Build the BPF socket walk of the netns collector" ${bpf_default})

if(SOCKET_EXPORTER_BPF)
  if(NOT (BPF_CLANG AND BPF_TOOL AND LIBBPF_FOUND AND EXISTS ${BPF_VMLINUX_BTF}))
    message(FATAL_ERROR "SOCKET_EXPORTER_BPF needs clang, bpftool, libbpf (libbpf-dev) and "
                        "${BPF_VMLINUX_BTF}")
  endif()
  set(bpf_dir ${CMAKE_CURRENT_BINARY_DIR}/bpf)
  set(bpf_source ${CMAKE_CURRENT_SOURCE_DIR}/bpf/netns_sockets.bpf.c)
  add_custom_command(OUTPUT ${bpf_dir}/vmlinux.h
    COMMAND ${CMAKE_COMMAND} -E make_directory ${bpf_dir}
    COMMAND ${BPF_TOOL} btf dump file ${BPF_VMLINUX_BTF} format c > ${bpf_dir}/vmlinux.h
    COMMENT "Generating vmlinux.h from the kernel's BTF")
  # -g makes the BTF that CO-RE needs; the DWARF beside it is only weight in
  # the embedded copy, so llvm-strip -g removes it where available.
  if(BPF_STRIP)
    set(bpf_strip_command COMMAND ${BPF_STRIP} -g ${bpf_dir}/netns_sockets.bpf.o)
  endif()
  add_custom_command(OUTPUT ${bpf_dir}/netns_sockets.bpf.o
    COMMAND ${BPF_CLANG} -O2 -g -target bpf -I${bpf_dir}
      ${LIBBPF_CFLAGS} -c ${bpf_source} -o ${bpf_dir}/netns_sockets.bpf.o
    ${bpf_strip_command}
    DEPENDS ${bpf_source} ${bpf_dir}/vmlinux.h
    COMMENT "Compiling the BPF socket walk")
  add_custom_command(OUTPUT ${bpf_dir}/netns_sockets_embedded.cpp
    COMMAND ${CMAKE_COMMAND} -DINPUT=${bpf_dir}/netns_sockets.bpf.o
      -DOUTPUT=${bpf_dir}/netns_sockets_embedded.cpp -P ${CMAKE_CURRENT_SOURCE_DIR}/bpf/embed.cmake
    DEPENDS ${bpf_dir}/netns_sockets.bpf.o ${CMAKE_CURRENT_SOURCE_DIR}/bpf/embed.cmake
    COMMENT "Embedding the BPF object")
  target_sources(socket_sources PRIVATE ${bpf_dir}/netns_sockets_embedded.cpp)
  target_compile_definitions(socket_sources PUBLIC SOCKET_EXPORTER_HAVE_BPF=1)
  target_link_libraries(socket_sources PUBLIC PkgConfig::LIBBPF)
  message(STATUS "netns collector: BPF socket walk enabled")
else()
  message(STATUS "netns collector: BPF socket walk not built (netlink per namespace only)")
endif()
