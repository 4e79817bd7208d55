# Optional BPF programs: the socket walk of the netns collector
# (collectors/sources/bpf_socket_walk.h) and the event counters of the events
# collector (collectors/sources/bpf_socket_events.h).
# SOCKET_EXPORTER_BPF defaults to ON when clang, bpftool, libbpf and the build
# machine's kernel BTF (for vmlinux.h; CO-RE relocates at load time) are all
# there. Without it, the loaders compile to stubs: the netns collector uses
# netlink per namespace and the events collector reports failure.
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
option(SOCKET_EXPORTER_BPF "Build the BPF programs (netns socket walk, events collector)"
  ${bpf_default})

set(BPF_SOURCE_DIR ${CMAKE_CURRENT_LIST_DIR})
set(BPF_BINARY_DIR ${CMAKE_CURRENT_BINARY_DIR}/bpf)

# socket_exporter_bpf_object(TARGET <library> NAME <name> SYMBOL <identifier>)
# compiles bpf/<name>.bpf.c against vmlinux.h and embeds the object in
# <library> as `const unsigned char <SYMBOL>[]` and `<SYMBOL>Size`, declared
# by bpf/<name>_embedded.h.
function(socket_exporter_bpf_object)
  cmake_parse_arguments(ARG "" "TARGET;NAME;SYMBOL" "" ${ARGN})
  set(source ${BPF_SOURCE_DIR}/${ARG_NAME}.bpf.c)
  set(object ${BPF_BINARY_DIR}/${ARG_NAME}.bpf.o)
  set(embedded ${BPF_BINARY_DIR}/${ARG_NAME}_embedded.cpp)
  # -g makes the BTF that CO-RE needs; the DWARF beside it is only weight in
  # the embedded copy, so llvm-strip -g removes it where available.
  set(strip_command)
  if(BPF_STRIP)
    set(strip_command COMMAND ${BPF_STRIP} -g ${object})
  endif()
  add_custom_command(OUTPUT ${object}
    COMMAND ${BPF_CLANG} -O2 -g -target bpf -I${BPF_BINARY_DIR} ${LIBBPF_CFLAGS}
      -c ${source} -o ${object}
    ${strip_command}
    DEPENDS ${source} ${BPF_BINARY_DIR}/vmlinux.h
    COMMENT "Compiling BPF program ${ARG_NAME}")
  add_custom_command(OUTPUT ${embedded}
    COMMAND ${CMAKE_COMMAND} -DINPUT=${object} -DOUTPUT=${embedded} -DNAME=${ARG_NAME}
      -DSYMBOL=${ARG_SYMBOL} -P ${BPF_SOURCE_DIR}/embed.cmake
    DEPENDS ${object} ${BPF_SOURCE_DIR}/embed.cmake
    COMMENT "Embedding BPF object ${ARG_NAME}")
  target_sources(${ARG_TARGET} PRIVATE ${embedded})
endfunction()

if(SOCKET_EXPORTER_BPF)
  if(NOT (BPF_CLANG AND BPF_TOOL AND LIBBPF_FOUND AND EXISTS ${BPF_VMLINUX_BTF}))
    message(FATAL_ERROR "SOCKET_EXPORTER_BPF needs clang, bpftool, libbpf (libbpf-dev) and "
                        "${BPF_VMLINUX_BTF}")
  endif()
  add_custom_command(OUTPUT ${BPF_BINARY_DIR}/vmlinux.h
    COMMAND ${CMAKE_COMMAND} -E make_directory ${BPF_BINARY_DIR}
    COMMAND ${BPF_TOOL} btf dump file ${BPF_VMLINUX_BTF} format c > ${BPF_BINARY_DIR}/vmlinux.h
    COMMENT "Generating vmlinux.h from the kernel's BTF")
  socket_exporter_bpf_object(TARGET socket_sources NAME netns_sockets SYMBOL kNetnsSocketsBpf)
  socket_exporter_bpf_object(TARGET socket_sources NAME socket_events SYMBOL kSocketEventsBpf)
  target_compile_definitions(socket_sources PUBLIC SOCKET_EXPORTER_HAVE_BPF=1)
  target_link_libraries(socket_sources PUBLIC PkgConfig::LIBBPF)
  message(STATUS "BPF programs enabled: netns socket walk, events collector")
else()
  message(STATUS "BPF programs not built (netns: netlink per namespace only; events: off)")
endif()
