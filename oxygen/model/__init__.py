"""The fast-thinking encoder-decoder of OxygenREC (plain torch): instruction token (scenario ⊕
trigger), reasoning-instruction adapter, instruction-guided retrieval (IGR), Q2I and weighted NTP
losses, optional MoE FFNs, an optional copy head (pointer over the encoder's items with a
learned gate), and the KV-cached StepModel inference API.

    from oxygen.model import OxygenModel
    model = OxygenModel(ModelConfig(...)); out = model(batch); state = model.start(batch)
"""

from oxygen.model.encdec import LossOutput, OxygenModel
from oxygen.model.inference import DecoderState

__all__ = ["DecoderState", "LossOutput", "OxygenModel"]
